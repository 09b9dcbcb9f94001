"""The public pool (公海): its list, claiming, releasing, and the recycle job."""
