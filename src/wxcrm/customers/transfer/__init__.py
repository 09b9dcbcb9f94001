"""Import and export of customers as CSV or XLSX, and the import template."""
