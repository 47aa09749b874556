-- Actions on a Sluice Rollout, offered only where the controller would act on them. Each one
-- writes the annotation mesh.sluice.dev/action, which the controller consumes (README: "What
-- Sluice guarantees"); pause and resume set status.manualPause, not spec.paused, so Git and
-- Argo CD's sync never undo them. Every action.lua checks the same conditions again: Argo CD
-- runs an action the UI shows disabled if it is asked to through the API or CLI.
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}

local function condition(typ)
  for _, c in ipairs(st.conditions or {}) do
    if c.type == typ and c.status == "True" then
      return c
    end
  end
  return nil
end

local phase = st.phase
local releasing = st.canaryRevision ~= nil and st.canaryRevision ~= "" and
  (phase == "Progressing" or phase == "Paused" or phase == "Holding" or phase == "Promoting")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
local pausedBySpec = obj.spec ~= nil and obj.spec.paused == true

local can = {}
-- promote ends the wait the release is in: a pause or analysis step, pre-promotion checks, a
-- manual gate, or a hold on inconclusive checks. It does nothing while pods, the route or a
-- pause are waited for, or while Prometheus is unreachable.
can.promote = releasing and (
  (reconciling ~= nil and (reconciling.reason == "Progressing" or reconciling.reason == "WaitingForPromote")) or
  (stalled ~= nil and stalled.reason == "InconclusiveLimitExceeded"))
-- promote-full skips every remaining step and promotes: a release that is progressing or
-- waits at a step, not one that is paused by a person or by Git, holding, or promoting.
can["promote-full"] = releasing and (phase == "Progressing" or phase == "Paused") and
  st.manualPause ~= true and not pausedBySpec
-- abort rolls back any release that is not finished.
can.abort = releasing
-- retry releases a rolled-back revision again; a rollback because the target is gone or
-- misconfigured needs a fix in Git instead.
can.retry = phase == "RolledBack" and st.abortReason ~= "TargetNotFound" and st.abortReason ~= "TargetMisconfigured"
-- pause freezes a release that is moving; one that waits for a person already stands still.
can.pause = releasing and (phase == "Progressing" or phase == "Holding") and st.manualPause ~= true and not pausedBySpec
-- resume undoes pause; spec.paused is resumed in Git.
can.resume = st.manualPause == true

-- One request at a time: a second one would overwrite the first before the controller saw it.
local pending = annotations["mesh.sluice.dev/action"] ~= nil

local actions = {}
for _, name in ipairs({"promote", "promote-full", "abort", "retry", "pause", "resume"}) do
  actions[name] = {["disabled"] = pending or not can[name]}
end
return actions
