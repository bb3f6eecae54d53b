"""Telephony adapter: talks to Asterisk over ARI (client, typed models) and ships a
fake Asterisk (simulator) that speaks the same protocol for tests, demos and benchmarks."""
