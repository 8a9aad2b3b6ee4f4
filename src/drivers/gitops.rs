//! GitOps driver (in progress).
