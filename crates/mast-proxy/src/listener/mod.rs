//! Listeners (LDS): filter-chain match and accept loops. (Being written.)
