-- retry: release the rolled-back revision again.
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local pending = annotations["mesh.sluice.dev/action"]
if pending ~= nil then
  error("the action " .. pending .. " is still waiting for the Sluice controller; run retry once it is taken", 0)
end

local phase = st.phase
local ok = phase == "RolledBack" and st.abortReason ~= "TargetNotFound" and st.abortReason ~= "TargetMisconfigured"
if not ok then
  error("retry does nothing now (phase " .. tostring(phase) .. "): only a release rolled back for its health or by abort is retried; a missing or misconfigured target is fixed in Git", 0)
end

annotations["mesh.sluice.dev/action"] = "retry"
obj.metadata.annotations = annotations
return obj
