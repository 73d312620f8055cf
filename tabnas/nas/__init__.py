"""Pure-torch NAS core: operations, search space, networks, strategies and selectors."""
