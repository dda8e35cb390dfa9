//! The merger thread: adds worker intervals into whole-run histograms and a per-second
//! timeline, prints the live table, and produces the final [`Summary`].
pub struct Merger;
pub struct MergerConfig;
pub struct Summary;
