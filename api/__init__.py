"""The aiohttp management API: it calls the supervisor's methods, knows no processes."""
