//! What a bank's approval of a module covers: the module, by hash, for one partner, and the
//! parameters jobs may give it (the rules themselves are an API type, `strongroom_api::approval`,
//! since the bank sends them with its decision).

pub use strongroom_api::approval::{ParameterRule, ParameterRules, ParameterRulesError};

/// The bank's decision on a module for a partner.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// Approved (true) or rejected.
    pub approved: bool,
    /// The parameters jobs may pass.
    pub parameters: ParameterRules,
}
