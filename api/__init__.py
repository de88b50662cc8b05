"""The read API and live page (`kota api`)."""
