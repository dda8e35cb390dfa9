//! config.toml + MQBLAST_* environment + command line -> a validated [`Plan`].
use crate::plan::Plan;
pub enum Command {
    Run(Box<Plan>),
}
