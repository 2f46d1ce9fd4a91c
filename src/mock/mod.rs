//! The chaos upstream (being written).
