"""Fleetgate's admin API: an aiohttp application on the broker's event loop (product.md §6)."""
