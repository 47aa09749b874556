-- Health of a Sluice Rollout (mesh.sluice.dev/v1alpha1) for Argo CD.
-- Reads what the controller writes: status.phase, observedGeneration and the Ready, Reconciling
-- and Stalled conditions. Uses the Lua base library only: argocd-cm scripts run without the
-- others unless resource.customizations.useOpenLibs is set.
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

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- "phase Paused, step 7/7, weight 50%": the phase and, while a release runs, where it is,
-- counting steps from 1 as kubectl sluice and the controller's messages do (status keeps the
-- 0-based index; blue-green has no steps).
local function where()
  local s = "phase " .. tostring(st.phase)
  if st.canaryRevision ~= nil and st.canaryRevision ~= "" then
    local steps = nil
    if obj.spec ~= nil and obj.spec.strategy ~= nil and obj.spec.strategy.canary ~= nil then
      steps = obj.spec.strategy.canary.steps
    end
    if st.currentStep ~= nil and steps ~= nil and st.currentStep < #steps then
      s = s .. ", step " .. tostring(st.currentStep + 1) .. "/" .. tostring(#steps)
    end
    s = s .. ", weight " .. tostring(st.canaryWeight or 0) .. "%"
  end
  return s
end

local function say(status, detail)
  hs.status = status
  hs.message = where()
  if detail ~= nil and detail ~= "" then
    hs.message = hs.message .. ": " .. detail
  end
  return hs
end

-- The controller's own words for what it waits for or did, most telling first.
local function detail()
  for _, typ in ipairs({"Stalled", "Reconciling"}) do
    local c = condition(typ)
    if isTrue(c) and c.message ~= nil then
      return c.message
    end
  end
  local ready = condition("Ready")
  if ready ~= nil then
    return ready.message
  end
  return nil
end

local observed = -1
if st ~= nil and st.observedGeneration ~= nil then
  observed = st.observedGeneration
end
if st == nil or (st.phase == nil and observed < 0 and st.conditions == nil) then
  hs.status = "Progressing"
  hs.message = "waiting for the controller: the Rollout has no status yet"
  return hs
end

local stalled = condition("Stalled")
local generation = obj.metadata.generation
if generation ~= nil and observed < generation then
  -- observedGeneration moves once a generation is applied, or judged Stalled (a person must act).
  return say("Progressing", "generation " .. tostring(generation) .. " is not applied yet (status is of generation " .. tostring(observed) .. ")")
end

if isTrue(stalled) then
  return say("Degraded", detail())
end

local phase = st.phase
if phase == "Healthy" then
  if isTrue(condition("Ready")) then
    return say("Healthy", detail())
  end
  return say("Progressing", detail())
elseif phase == "Paused" then
  return say("Suspended", detail())
elseif phase == "RollingBack" then
  -- Traffic is on its way back to the stable slot: the release failed, say why.
  local why = "rolling back"
  if st.abortReason ~= nil then
    why = why .. " (" .. st.abortReason .. ")"
  end
  local rb = condition("RolledBack")
  if isTrue(rb) and rb.message ~= nil then
    why = why .. ": " .. rb.message
  end
  return say("Degraded", why)
elseif phase == "RolledBack" or phase == "Failed" then
  return say("Degraded", detail())
end
-- Initializing, Progressing, Holding, Promoting, and any phase a newer controller adds:
-- work under way.
return say("Progressing", detail())
