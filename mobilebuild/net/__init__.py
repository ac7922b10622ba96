"""The network: one content-addressed downloader, and safe extraction of what it fetched."""
