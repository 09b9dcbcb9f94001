"""Assigning customers to advisors: one, a batch, or from the public pool."""
