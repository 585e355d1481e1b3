//! Next-hop resolution (in progress).
