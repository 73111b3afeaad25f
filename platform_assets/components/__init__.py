"""How each kind of declaration under defs/ becomes Dagster definitions (component types)."""
