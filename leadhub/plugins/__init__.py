"""Plugin loader and the shipped plugins (lead, and later pool, customer, attribution)."""
