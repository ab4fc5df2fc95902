"""Device agreement: each image predicted again on another device, and the two compared."""
