"""From triples to knowledge tokens: sentence encoder, linear adapters, KB manager."""
