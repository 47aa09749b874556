-- resume: undo the pause action (spec.paused, set in Git, is resumed in Git).
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run resume once it is taken", 0)
end

local phase = st.phase
local ok = st.manualPause == true
if not ok then
  error("resume does nothing now (phase " .. tostring(phase) .. "): the Rollout was not paused by the pause action", 0)
end

annotations["mesh.sluice.dev/action"] = "resume"
obj.metadata.annotations = annotations
return obj
