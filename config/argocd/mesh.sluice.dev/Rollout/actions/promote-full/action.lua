-- promote-full: skip every remaining step of the release and promote (the canary still has to
-- answer through the data plane first). For a blue-green release it is promote.
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run promote-full once it is taken", 0)
end

local phase = st.phase
local releasing = st.canaryRevision ~= nil and st.canaryRevision ~= ""
local paused = st.manualPause == true or (obj.spec ~= nil and obj.spec.paused == true)
if not releasing or not (phase == "Progressing" or phase == "Paused") or paused then
  error("promote-full does nothing now (phase " .. tostring(phase) .. "): it promotes a release that is progressing or waiting at a step, not one that is paused, holding, promoting or over", 0)
end

annotations["mesh.sluice.dev/action"] = "promote-full"
obj.metadata.annotations = annotations
return obj
