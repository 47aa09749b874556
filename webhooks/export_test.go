package webhooks

// StandInServices lets the fuzz test translate with the webhook's own stand-ins.
var StandInServices = standInServices
