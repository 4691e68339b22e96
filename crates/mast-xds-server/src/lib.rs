//! mast-xds-server
