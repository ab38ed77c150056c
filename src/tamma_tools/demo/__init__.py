"""The offline demo: a scripted stand-in model served on loopback, and a throwaway workspace."""
