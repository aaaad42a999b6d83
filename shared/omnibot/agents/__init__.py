"""The pure agents library: the agent format and its validation, conditions, templates, the engine
`step(state, event, now) -> (state, effects)`, the handoff rules and the text conventions of
Omnidesk's chat. No I/O and no clock; imports nothing of omnibot but itself."""
