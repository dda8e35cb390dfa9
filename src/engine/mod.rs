//! The load engine: pinned worker threads, each a mio event loop owning its connections.
