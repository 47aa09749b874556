-- abort: roll the release back now, all traffic to the stable slot.
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run abort once it is taken", 0)
end

local phase = st.phase
local releasing = st.canaryRevision ~= nil and st.canaryRevision ~= "" and
  (phase == "Progressing" or phase == "Paused" or phase == "Holding" or phase == "Promoting")
local ok = releasing
if not ok then
  error("abort does nothing now (phase " .. tostring(phase) .. "): only a release that is not finished can be aborted", 0)
end

annotations["mesh.sluice.dev/action"] = "abort"
obj.metadata.annotations = annotations
return obj
