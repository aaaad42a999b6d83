"""The playground: the sandbox's own page, where a person plays the customer and the operator."""
