"""Customers for staff: the list, options, CRUD, the detail with its timeline, follow-ups."""
