//! rtnetlink (in progress).
