//! kyu-sqlite (being written).
