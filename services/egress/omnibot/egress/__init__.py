"""egress: performs outbound actions against the Omnidesk REST API."""
