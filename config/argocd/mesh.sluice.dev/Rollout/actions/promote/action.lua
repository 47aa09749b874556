-- promote: end the wait the release is in (a pause or analysis step, pre-promotion checks, a
-- manual gate, a hold on inconclusive checks).
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run promote once it is taken", 0)
end

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
local ok = releasing and (
  (reconciling ~= nil and (reconciling.reason == "Progressing" or reconciling.reason == "WaitingForPromote")) or
  (stalled ~= nil and stalled.reason == "InconclusiveLimitExceeded"))
if not ok then
  error("promote does nothing now (phase " .. tostring(phase) .. "): it ends a pause or analysis step, pre-promotion checks, a manual gate or a hold on inconclusive checks, and nothing else", 0)
end

annotations["mesh.sluice.dev/action"] = "promote"
obj.metadata.annotations = annotations
return obj
