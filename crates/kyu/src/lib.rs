//! kyu (being written).
