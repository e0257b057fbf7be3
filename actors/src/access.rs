//! Who may do what, decided in one place. Resolvers name an [`Action`]; [`authorize`] answers.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::AccountId;

/// The role of an account. Agents hold named roles, one per service (`sport`, `culture`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Roles {
    /// Administrators design agendas and forms and may act everywhere.
    pub admin: bool,
    /// Agent roles, by service slug. An account with at least one is an agent.
    pub agent_roles: Vec<String>,
}

impl Roles {
    /// A citizen: no administration, no agent role.
    pub fn citizen() -> Self {
        Self::default()
    }

    /// True when the account works in the back office.
    pub fn is_agent(&self) -> bool {
        !self.agent_roles.is_empty()
    }
}

/// The caller of an operation: an authenticated account with its roles, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No valid session.
    Anonymous,
    /// A signed-in account.
    Account {
        /// The account.
        id: AccountId,
        /// Its roles when the session started.
        roles: Roles,
    },
}

impl Principal {
    /// The account, if signed in.
    pub fn account_id(&self) -> Option<AccountId> {
        match self {
            Principal::Anonymous => None,
            Principal::Account { id, .. } => Some(*id),
        }
    }

    fn roles(&self) -> Option<&Roles> {
        match self {
            Principal::Anonymous => None,
            Principal::Account { roles, .. } => Some(roles),
        }
    }

    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.roles().is_some_and(|r| r.admin)
    }

    /// True for agents of the given services (any service when `services` is empty), and for
    /// administrators.
    pub fn is_agent_for(&self, services: &[String]) -> bool {
        match self.roles() {
            None => false,
            Some(r) if r.admin => true,
            Some(r) if services.is_empty() => r.is_agent(),
            Some(r) => r.agent_roles.iter().any(|role| services.contains(role)),
        }
    }
}

/// Everything a caller may attempt that needs a decision.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Create or change agendas, their events and notification settings.
    ManageAgendas,
    /// Create agent or administrator accounts and change roles.
    ManageAccounts,
    /// See the outgoing mail queue.
    SeeOutbox,
    /// See an event: anyone once it is published; agents of the agenda before that.
    SeeEvent {
        /// Services whose agents manage the agenda (empty: every agent).
        agenda_services: &'a [String],
        /// False while the publication date is in the future.
        published: bool,
    },
    /// See the bookings of an agenda (who booked what).
    SeeBookings {
        /// Services whose agents manage the agenda (empty: every agent).
        agenda_services: &'a [String],
    },
    /// Book for `for_account`.
    Book {
        /// Services whose agents manage the agenda.
        agenda_services: &'a [String],
        /// Whose booking it is.
        for_account: AccountId,
    },
    /// Run an agenda's events day to day: cancel a whole event, check attendance.
    ManageEvents {
        /// Services whose agents manage the agenda (empty: every agent).
        agenda_services: &'a [String],
    },
    /// See the attendance record of `account` (the account itself, and agents).
    SeeAttendance {
        /// Whose record.
        account: AccountId,
    },
    /// Design forms and workflows.
    ManageForms,
    /// Answer phone calls at the reception (agents).
    AnswerCalls,
    /// Submit a form on someone's behalf (phone, counter...): agents of these roles.
    SubmitOnBehalf {
        /// The form's back-office submission roles.
        roles: &'a [String],
    },
    /// See a demand's content: its submitter, agents of the roles playing its functions,
    /// agents given its tracking code, administrators.
    SeeDemand {
        /// The person it is for.
        submitter: Option<AccountId>,
        /// Roles playing its functions.
        content_roles: &'a [String],
        /// Agents given access through the tracking code.
        granted: &'a [AccountId],
    },
    /// See that a demand exists and its summary: those who see its content, and agents of the
    /// form's summary roles.
    SeeDemandSummary {
        /// The person it is for.
        submitter: Option<AccountId>,
        /// Roles playing its functions.
        content_roles: &'a [String],
        /// The form's summary roles.
        summary_roles: &'a [String],
        /// Agents given access through the tracking code.
        granted: &'a [AccountId],
    },
    /// Link a demand entered for an unknown person to their account: agents of the roles
    /// playing its functions or of its form's back-office submission roles, agents given its
    /// tracking code (the one who entered it among them), administrators.
    LinkDemandUser {
        /// Roles playing its functions.
        content_roles: &'a [String],
        /// The form's back-office submission roles.
        submission_roles: &'a [String],
        /// Agents given access through the tracking code.
        granted: &'a [AccountId],
    },
    /// Cancel a booking owned by `owner`.
    CancelBooking {
        /// Services whose agents manage the agenda.
        agenda_services: &'a [String],
        /// The booking's owner.
        owner: AccountId,
    },
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The action needs a signed-in account.
    #[error("authentication required")]
    Unauthenticated,
    /// The account may not do this.
    #[error("not allowed")]
    Forbidden,
    /// The thing is hidden from this caller: it must not learn that it exists.
    #[error("not found")]
    Hidden,
}

impl HasErrorCode for AccessError {
    fn code(&self) -> ErrorCode {
        match self {
            AccessError::Unauthenticated => ErrorCode::Unauthenticated,
            AccessError::Forbidden => ErrorCode::Forbidden,
            AccessError::Hidden => ErrorCode::NotFound,
        }
    }
}

/// The single authorization decision of Guichet.
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<(), AccessError> {
    let Some(me) = principal.account_id() else {
        // Published events are public; everything else needs an account.
        return match action {
            Action::SeeEvent { published: true, .. } => Ok(()),
            Action::SeeEvent { published: false, .. } => Err(AccessError::Hidden),
            _ => Err(AccessError::Unauthenticated),
        };
    };
    // Demands name roles explicitly: an empty list means nobody, not every agent.
    let holds_any = |roles: &[String]| {
        principal
            .roles()
            .is_some_and(|r| r.admin || r.agent_roles.iter().any(|x| roles.contains(x)))
    };
    let allowed = match action {
        Action::ManageAgendas
        | Action::ManageAccounts
        | Action::SeeOutbox
        | Action::ManageForms => principal.is_admin(),
        Action::SubmitOnBehalf { roles } => holds_any(roles),
        Action::AnswerCalls => principal.is_agent_for(&[]),
        Action::SeeDemand { submitter, content_roles, granted } => {
            if submitter == Some(me) || granted.contains(&me) || holds_any(content_roles) {
                true
            } else {
                return Err(AccessError::Hidden);
            }
        }
        Action::SeeDemandSummary { submitter, content_roles, summary_roles, granted } => {
            if submitter == Some(me)
                || granted.contains(&me)
                || holds_any(content_roles)
                || holds_any(summary_roles)
            {
                true
            } else {
                return Err(AccessError::Hidden);
            }
        }
        Action::LinkDemandUser { content_roles, submission_roles, granted } => {
            let agent = principal.roles().is_some_and(|r| r.admin || r.is_agent());
            agent
                && (holds_any(content_roles)
                    || holds_any(submission_roles)
                    || granted.contains(&me))
        }
        Action::SeeEvent { agenda_services, published } => {
            if published || principal.is_agent_for(agenda_services) {
                true
            } else {
                return Err(AccessError::Hidden);
            }
        }
        Action::SeeBookings { agenda_services } | Action::ManageEvents { agenda_services } => {
            principal.is_agent_for(agenda_services)
        }
        Action::SeeAttendance { account } => {
            account == me || principal.roles().is_some_and(|r| r.admin || r.is_agent())
        }
        Action::Book { agenda_services, for_account } => {
            for_account == me || principal.is_agent_for(agenda_services)
        }
        Action::CancelBooking { agenda_services, owner } => {
            owner == me || principal.is_agent_for(agenda_services)
        }
    };
    if allowed { Ok(()) } else { Err(AccessError::Forbidden) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citizen() -> Principal {
        Principal::Account { id: AccountId::new(), roles: Roles::citizen() }
    }

    fn agent(service: &str) -> Principal {
        Principal::Account {
            id: AccountId::new(),
            roles: Roles { admin: false, agent_roles: vec![service.to_owned()] },
        }
    }

    #[test]
    fn anonymous_sees_only_published_events() {
        let services = vec![];
        let see = |published| Action::SeeEvent { agenda_services: &services, published };
        assert_eq!(authorize(&Principal::Anonymous, see(true)), Ok(()));
        assert_eq!(authorize(&Principal::Anonymous, see(false)), Err(AccessError::Hidden));
        assert_eq!(
            authorize(&Principal::Anonymous, Action::ManageAgendas),
            Err(AccessError::Unauthenticated)
        );
    }

    #[test]
    fn citizens_book_for_themselves_only() {
        let me = citizen();
        let services = vec!["sport".to_owned()];
        let mine =
            Action::Book { agenda_services: &services, for_account: me.account_id().unwrap() };
        let other = Action::Book { agenda_services: &services, for_account: AccountId::new() };
        assert_eq!(authorize(&me, mine), Ok(()));
        assert_eq!(authorize(&me, other), Err(AccessError::Forbidden));
        assert_eq!(authorize(&me, Action::ManageAgendas), Err(AccessError::Forbidden));
    }

    #[test]
    fn demands_are_seen_by_their_submitter_and_the_roles_named() {
        let me = citizen();
        let police = agent("police");
        let culture = agent("culture");
        let roles = vec!["police".to_owned()];
        let summary = vec!["culture".to_owned()];
        let mine = me.account_id();
        let see = Action::SeeDemand { submitter: mine, content_roles: &roles, granted: &[] };
        assert_eq!(authorize(&me, see), Ok(()));
        assert_eq!(authorize(&police, see), Ok(()));
        assert_eq!(authorize(&culture, see), Err(AccessError::Hidden));
        assert_eq!(authorize(&Principal::Anonymous, see), Err(AccessError::Unauthenticated));
        let listed = Action::SeeDemandSummary {
            submitter: mine,
            content_roles: &roles,
            summary_roles: &summary,
            granted: &[],
        };
        assert_eq!(authorize(&culture, listed), Ok(()));
        assert_eq!(authorize(&agent("sport"), listed), Err(AccessError::Hidden));
        // No role named: no agent, whatever their roles.
        let none = Action::SeeDemand { submitter: None, content_roles: &[], granted: &[] };
        assert_eq!(authorize(&police, none), Err(AccessError::Hidden));
        let granted = [police.account_id().unwrap()];
        let given = Action::SeeDemand { submitter: None, content_roles: &[], granted: &granted };
        assert_eq!(authorize(&police, given), Ok(()));
    }

    #[test]
    fn a_demand_is_linked_to_its_person_by_the_agents_who_handle_it() {
        let roles = vec!["police".to_owned()];
        let counter = vec!["accueil".to_owned()];
        let entered_by = agent("sport");
        let granted = [entered_by.account_id().unwrap()];
        let link = Action::LinkDemandUser {
            content_roles: &roles,
            submission_roles: &counter,
            granted: &granted,
        };
        assert_eq!(authorize(&agent("police"), link), Ok(()));
        assert_eq!(authorize(&agent("accueil"), link), Ok(()));
        assert_eq!(authorize(&entered_by, link), Ok(()));
        assert_eq!(authorize(&agent("culture"), link), Err(AccessError::Forbidden));
        let citizen = citizen();
        let mine = [citizen.account_id().unwrap()];
        let given =
            Action::LinkDemandUser { content_roles: &[], submission_roles: &[], granted: &mine };
        assert_eq!(authorize(&citizen, given), Err(AccessError::Forbidden), "not to themselves");
        assert_eq!(authorize(&Principal::Anonymous, link), Err(AccessError::Unauthenticated));
    }

    #[test]
    fn agents_act_only_for_their_services() {
        let services = vec!["sport".to_owned()];
        let on_behalf = Action::Book { agenda_services: &services, for_account: AccountId::new() };
        assert_eq!(authorize(&agent("sport"), on_behalf), Ok(()));
        assert_eq!(authorize(&agent("culture"), on_behalf), Err(AccessError::Forbidden));
        let open_agenda: Vec<String> = vec![];
        let see = Action::SeeBookings { agenda_services: &open_agenda };
        assert_eq!(authorize(&agent("culture"), see), Ok(()));
        assert_eq!(authorize(&citizen(), see), Err(AccessError::Forbidden));
    }
}
