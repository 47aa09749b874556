-- Health of a Sluice HealthGate (mesh.sluice.dev/v1alpha1) for Argo CD. A gate with a target
-- is evaluated on its own: Pass is Healthy, Fail Degraded; no verdict yet (evaluating, too few
-- samples, Prometheus unreachable) is Progressing, as a Rollout holds on it rather than fail.
-- Uses the Lua base library only (argocd-cm scripts run without the others).
local hs = {}
local st = obj.status

local function condition(typ)
  if st == nil or st.conditions == nil then
    return nil
  end
  for _, c in ipairs(st.conditions) do
    if c.type == typ then
      return c
    end
  end
  return nil
end

local function say(status, head, c)
  hs.status = status
  hs.message = head
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    hs.message = head .. ": " .. c.message
  end
  return hs
end

local observed = -1
if st ~= nil and st.observedGeneration ~= nil then
  observed = st.observedGeneration
end
if st == nil or (observed < 0 and st.conditions == nil) then
  hs.status = "Progressing"
  hs.message = "waiting for the controller: the HealthGate has no status yet"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "generation " .. tostring(generation) .. " is not evaluated yet (status is of generation " .. tostring(observed) .. ")"
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return say("Degraded", tostring(stalled.reason), stalled)
end
local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller: no Ready condition yet"
  return hs
end
if ready.status == "True" then
  if st.verdict ~= nil and st.verdict ~= "" then
    return say("Healthy", "verdict " .. st.verdict, ready)
  end
  return say("Healthy", tostring(ready.reason), ready)
end
if st.verdict == "Fail" and ready.reason == "Fail" then
  return say("Degraded", "verdict Fail", ready)
end
if ready.reason == "Inconclusive" or ready.reason == "Unreachable" then
  return say("Progressing", "verdict " .. ready.reason, ready)
end
return say("Progressing", tostring(ready.reason), ready)
