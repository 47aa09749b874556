-- Health of a Sluice MeshPolicy (mesh.sluice.dev/v1alpha1) for Argo CD: Healthy when the policy
-- is in force (with differences the message names), Degraded when a person must act (a
-- conflict with an older policy, fields the provider can't express, no provider), Progressing
-- while it waits (a target Service not there yet, a write being retried).
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
  hs.message = "waiting for the controller: the MeshPolicy has no status yet"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "generation " .. tostring(generation) .. " is not applied yet (status is of generation " .. tostring(observed) .. ")"
  return hs
end

local provider = st.provider or "no provider"
local conflicted = condition("Conflicted")
if conflicted ~= nil and conflicted.status == "True" then
  return say("Degraded", "Conflicted", conflicted)
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return say("Degraded", provider .. ", " .. tostring(stalled.reason), stalled)
end
local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller: no Ready condition yet"
  return hs
end
if ready.status == "True" then
  return say("Healthy", provider .. ", " .. tostring(ready.reason), ready)
end
return say("Progressing", provider .. ", " .. tostring(ready.reason), ready)
