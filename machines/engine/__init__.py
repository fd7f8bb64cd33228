"""Docker engines: reaching them over asyncio streams and watching many at once."""
