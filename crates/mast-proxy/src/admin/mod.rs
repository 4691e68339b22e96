//! Admin (127.0.0.1:15000) and health (15021) servers. (Being written.)
