"""Who-is-who code added after the first wave: the hub's own signing key in service (`hubkey`)."""
