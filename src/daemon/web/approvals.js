// approvals.js: the Approvals view, kept as a place for the approvals feature (not built yet).
// When the daemon can hold a request for a person's answer, this lists the pending ones as
// cards (what exactly will happen, who may answer) with Approve / Deny / Allow for this run,
// from its endpoints; until then it shows index.html's placeholder.
'use strict';

export const approvals = {
  init() {},
  show() {},
  hide() {},
};
