//! nftables ingress drop (in progress).
