//! Planning: a `Change` checked against the running configuration and
//! turned into one `Edit` of the document (with the standby a split change
//! leaves), before the controller validates, stores and writes it.

use super::Controller;
use crate::config::Config;
use crate::control::edit::Edit;
use crate::control::standby;
use crate::control::{Change, ChangeError};
use crate::event::Action;

/// A change turned into an edit of the document (`Controller::plan`).
pub(in crate::control) struct Plan {
    /// What the history will call it.
    pub(in crate::control) action: Action,
    pub(in crate::control) edit: Edit,
    /// The route whose split it sets, if any (for its old and new split).
    pub(in crate::control) route: Option<String>,
    /// `pool/addr` of the backend it drains or undrains.
    pub(in crate::control) backend: Option<String>,
}

impl Plan {
    /// A change of `route`'s split.
    fn route(action: Action, route: &str, edit: Edit) -> Self {
        Plan {
            action,
            edit,
            route: Some(route.to_owned()),
            backend: None,
        }
    }
}

impl Controller {
    /// Turns a change into an edit of the document, checking names first;
    /// a change of a route's split also sets the standby it leaves
    /// (`standby::after_split`: a flip or promotion keeps the pool it
    /// replaced, a split that gives the standby weight ends it).
    pub(in crate::control) fn plan(&mut self, change: &Change) -> Result<Plan, ChangeError> {
        let mut plan = self.plan_edit(change)?;
        let Edit::SetSplit { route, split } = &plan.edit else {
            return Ok(plan);
        };
        let Some(rc) = self.config.routes.iter().find(|r| r.name == *route) else {
            return Ok(plan);
        };
        let kept = match change {
            Change::Flip { .. } => standby::replaced(&rc.split, split),
            Change::Promote { stable, .. } => Some(stable.as_str()),
            _ => None,
        };
        let usable = |p: &str| {
            self.config
                .pools
                .iter()
                .any(|x| x.name == p && !(x.backends.is_empty() && x.names.is_empty()))
        };
        let current = rc.http.standby.as_deref();
        let after = standby::after_split(split, current, kept, usable);
        if after.as_deref() != current {
            // A promotion whose last step already gave the canary every
            // request changes only the standby, and says so.
            if *split == rc.split {
                plan.action = Action::Standby;
            }
            let set = Edit::SetStandby {
                route: route.clone(),
                pool: after,
            };
            plan.edit = Edit::Many(vec![plan.edit, set]);
        }
        Ok(plan)
    }

    /// All of `route`'s traffic to `to` (a flip, or a promotion's end).
    fn flip(&self, action: Action, route: &str, to: &str) -> Result<Plan, ChangeError> {
        let current = self
            .split_of(route)
            .ok_or_else(|| ChangeError::NotFound(format!("route {route:?}")))?;
        if !self.config.pools.iter().any(|x| x.name == to) {
            return Err(ChangeError::NotFound(format!("pool {to:?}")));
        }
        let mut split: Vec<(String, u32)> = current
            .iter()
            .map(|(p, _)| (p.clone(), if p == to { 100 } else { 0 }))
            .collect();
        if !split.iter().any(|(p, _)| p == to) {
            split.push((to.to_owned(), 100));
        }
        Ok(Plan::route(
            action,
            route,
            Edit::SetSplit {
                route: route.to_owned(),
                split,
            },
        ))
    }

    /// The edit of one change, before the standby it leaves.
    fn plan_edit(&mut self, change: &Change) -> Result<Plan, ChangeError> {
        let pool_exists = |c: &Config, p: &str| c.pools.iter().any(|x| x.name == p);
        let route_split = |c: &Config, r: &str| {
            c.routes
                .iter()
                .find(|x| x.name == r)
                .map(|x| x.split.clone())
                .ok_or_else(|| ChangeError::NotFound(format!("route {r:?}")))
        };
        Ok(match change {
            Change::RevertFlip { route, to, split } => {
                let current = route_split(&self.config, route)?;
                if !current.iter().all(|(p, w)| (p == to) == (*w > 0)) {
                    return Err(ChangeError::Superseded(format!(
                        "route {route:?} no longer sends everything to {to:?}; its split stands"
                    )));
                }
                let set = Change::SetSplit {
                    route: route.clone(),
                    split: split.clone(),
                };
                return self.plan_edit(&set);
            }
            Change::Reload | Change::Shared(_) | Change::LocalFallback { .. } => {
                return Err(ChangeError::Invalid("not an edit of the document".into()))
            }
            Change::SetSplit { route, split } => {
                let current = route_split(&self.config, route)?;
                if let Some((p, _)) = split.iter().find(|(p, _)| !pool_exists(&self.config, p)) {
                    return Err(ChangeError::Invalid(format!(
                        "split names unknown pool {p:?}"
                    )));
                }
                // Keep the order written in the file; pools left out get 0.
                let mut merged: Vec<(String, u32)> = current
                    .iter()
                    .map(|(p, _)| {
                        (
                            p.clone(),
                            split.iter().find(|(q, _)| q == p).map_or(0, |(_, w)| *w),
                        )
                    })
                    .collect();
                for (p, w) in split {
                    if !merged.iter().any(|(q, _)| q == p) {
                        merged.push((p.clone(), *w));
                    }
                }
                Plan::route(
                    Action::Split,
                    route,
                    Edit::SetSplit {
                        route: route.clone(),
                        split: merged,
                    },
                )
            }
            Change::Flip { route, to } => self.flip(Action::Flip, route, to)?,
            // The history calls a promotion's last change a split, as it
            // did before promotions kept a standby.
            Change::Promote { route, to, .. } => self.flip(Action::Split, route, to)?,
            Change::Standby { route, pool } => {
                let split = route_split(&self.config, route)?;
                if let Some(p) = pool {
                    if !pool_exists(&self.config, p) {
                        return Err(ChangeError::NotFound(format!("pool {p:?}")));
                    }
                    if split.iter().any(|(q, w)| q == p && *w > 0) {
                        return Err(ChangeError::Invalid(format!(
                            "pool {p:?} carries weight in route {route:?}'s split; a standby takes \
                             traffic only while the split's pools have no available backend \
                             (set its weight to 0 first)"
                        )));
                    }
                }
                Plan::route(
                    Action::Standby,
                    route,
                    Edit::SetStandby {
                        route: route.clone(),
                        pool: pool.clone(),
                    },
                )
            }
            Change::Maintenance { route, on } => {
                route_split(&self.config, route)?;
                Plan::route(
                    Action::Maintenance,
                    route,
                    Edit::SetMaintenance {
                        route: route.clone(),
                        on: *on,
                    },
                )
            }
            Change::Rollback { route } => {
                route_split(&self.config, route)?;
                let split = self
                    .previous
                    .get_mut(route)
                    .and_then(Vec::pop)
                    .ok_or_else(|| ChangeError::NothingToRollBack(route.clone()))?;
                Plan::route(
                    Action::Rollback,
                    route,
                    Edit::SetSplit {
                        route: route.clone(),
                        split,
                    },
                )
            }
            Change::Drain { pool, addr, drain } => {
                let p = self
                    .config
                    .pools
                    .iter()
                    .find(|x| x.name == *pool)
                    .ok_or_else(|| ChangeError::NotFound(format!("pool {pool:?}")))?;
                if !p.backends.iter().any(|b| b.addr == *addr) {
                    return Err(ChangeError::NotFound(format!(
                        "backend {addr} in pool {pool:?}"
                    )));
                }
                let action = if *drain {
                    Action::Drain
                } else {
                    Action::Undrain
                };
                let edit = Edit::SetDrain {
                    pool: pool.clone(),
                    addr: *addr,
                    drain: *drain,
                };
                Plan {
                    action,
                    edit,
                    route: None,
                    backend: Some(format!("{pool}/{addr}")),
                }
            }
        })
    }
}
