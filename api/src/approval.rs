//! What a bank's approval of a module covers: the module, by hash, for one partner, and the
//! parameters jobs may give it. A module reviewed as a segment benchmark must not be pointed at
//! one customer by its inputs, so an approval lists, per parameter, the exact values or the
//! numeric range it was reviewed with; a job whose parameters fall outside is refused before any
//! charge. An approval with no rules allows no parameters at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One parameter's allowed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged, deny_unknown_fields)]
pub enum ParameterRule {
    /// Exactly one of these values.
    Values {
        /// The allowed values.
        #[cfg_attr(feature = "openapi", schema(min_items = 1))]
        values: Vec<String>,
    },
    /// A decimal number within `min..=max`.
    Range {
        /// Least value.
        min: f64,
        /// Greatest value.
        max: f64,
    },
}

/// Per parameter name, what is allowed. Names absent here may not be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ParameterRules(pub BTreeMap<String, ParameterRule>);

/// Why parameter rules, or the parameters of a job, were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParameterRulesError(pub String);

impl From<String> for ParameterRulesError {
    fn from(message: String) -> Self {
        ParameterRulesError(message)
    }
}

impl From<&str> for ParameterRulesError {
    fn from(message: &str) -> Self {
        ParameterRulesError(message.to_string())
    }
}

impl ParameterRules {
    /// Parses the stored JSON form.
    pub fn from_json(text: &str) -> Result<ParameterRules, ParameterRulesError> {
        let rules: ParameterRules =
            serde_json::from_str(text).map_err(|e| format!("approval parameters: {e}"))?;
        rules.validate()?;
        Ok(rules)
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Parses command-line rules: `name=v1,v2` (exact values) or `name=lo..hi` (a range).
    pub fn parse_args(args: &[String]) -> Result<ParameterRules, ParameterRulesError> {
        let mut rules = BTreeMap::new();
        for arg in args {
            let Some((name, spec)) = arg.split_once('=') else {
                return Err(format!(
                    "--parameter '{arg}': write name=value[,value...] or name=min..max"
                )
                .into());
            };
            let rule = match spec.split_once("..") {
                Some((lo, hi)) => ParameterRule::Range {
                    min: lo
                        .trim()
                        .parse()
                        .map_err(|_| format!("--parameter {name}: '{lo}' is not a number"))?,
                    max: hi
                        .trim()
                        .parse()
                        .map_err(|_| format!("--parameter {name}: '{hi}' is not a number"))?,
                },
                None => ParameterRule::Values {
                    values: spec.split(',').map(|v| v.to_string()).collect(),
                },
            };
            if rules.insert(name.to_string(), rule).is_some() {
                return Err(format!("--parameter {name} is given twice").into());
            }
        }
        let rules = ParameterRules(rules);
        rules.validate()?;
        Ok(rules)
    }

    /// Checks the rules themselves: values given, finite ranges with min at most max.
    pub fn validate(&self) -> Result<(), ParameterRulesError> {
        for (name, rule) in &self.0 {
            match rule {
                ParameterRule::Values { values } if values.is_empty() => {
                    return Err(format!("parameter {name}: no values allowed").into());
                }
                ParameterRule::Range { min, max } if !(min.is_finite() && max.is_finite()) => {
                    return Err(format!("parameter {name}: bounds must be finite numbers").into());
                }
                ParameterRule::Range { min, max } if min > max => {
                    return Err(format!("parameter {name}: min {min} is above max {max}").into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a job's parameters against the rules.
    pub fn check(&self, parameters: &[(String, String)]) -> Result<(), ParameterRulesError> {
        for (name, value) in parameters {
            match self.0.get(name) {
                None => {
                    return Err(format!("parameter '{name}' was not part of the approval").into());
                }
                Some(ParameterRule::Values { values }) if !values.contains(value) => {
                    return Err(format!(
                        "parameter '{name}' = '{value}'; approved values: {}",
                        values.join(", ")
                    )
                    .into());
                }
                Some(ParameterRule::Range { min, max }) => {
                    let v: f64 = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("parameter '{name}' = '{value}' is not a number"))?;
                    if !(v >= *min && v <= *max) {
                        return Err(format!(
                            "parameter '{name}' = {value}; approved range {min}..{max}"
                        )
                        .into());
                    }
                }
                Some(ParameterRule::Values { .. }) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rules_allow_only_what_was_reviewed() {
        let rules = ParameterRules::parse_args(&[
            "segment=young,old".to_string(),
            "min_balance=0..10000".to_string(),
        ])
        .expect("rules");
        assert!(rules.check(&p(&[("segment", "young")])).is_ok());
        assert!(rules.check(&p(&[("min_balance", "500")])).is_ok());
        assert!(rules.check(&p(&[])).is_ok());
        assert!(rules.check(&p(&[("segment", "customer-42")])).is_err());
        assert!(rules.check(&p(&[("min_balance", "1234567.89")])).is_err());
        assert!(rules.check(&p(&[("min_balance", "NaN")])).is_err());
        assert!(rules.check(&p(&[("other", "1")])).is_err());
        assert!(ParameterRules::default().check(&p(&[("x", "1")])).is_err());
        let back = ParameterRules::from_json(&rules.to_json()).expect("round trip");
        assert_eq!(back, rules);
        assert!(ParameterRules::parse_args(&["x=5..1".to_string()]).is_err());
        assert!(ParameterRules::parse_args(&["x".to_string()]).is_err());
        assert!(ParameterRules::from_json(r#"{"x":{"surprise":1}}"#).is_err());
    }
}
