//! Clusters (CDS), endpoints (EDS), load balancing, circuit breakers, outlier detection. (Being written.)
