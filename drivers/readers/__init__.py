"""Fixed code readers: Cognex DMCC."""
