"""sandbox: an Omnidesk stand-in speaking its wire format, for trying omnibot and for tests."""
