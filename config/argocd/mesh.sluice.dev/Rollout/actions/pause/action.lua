-- pause: freeze the release where it is (status.manualPause: spec.paused, which Git owns, is left alone).
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run pause once it is taken", 0)
end

local phase = st.phase
local releasing = st.canaryRevision ~= nil and st.canaryRevision ~= "" and
  (phase == "Progressing" or phase == "Paused" or phase == "Holding" or phase == "Promoting")
local ok = releasing and (phase == "Progressing" or phase == "Holding") and st.manualPause ~= true and
  not (obj.spec ~= nil and obj.spec.paused == true)
if not ok then
  error("pause does nothing now (phase " .. tostring(phase) .. "): only a moving release can be paused", 0)
end

annotations["mesh.sluice.dev/action"] = "pause"
obj.metadata.annotations = annotations
return obj
