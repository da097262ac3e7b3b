//! kube-proxy iptables layout (being written).
