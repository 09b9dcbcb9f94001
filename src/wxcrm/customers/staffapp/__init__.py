"""The staff mini program's customer endpoints (the original's `/api/customers/miniprogram/*`)."""
