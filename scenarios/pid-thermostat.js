// A PID thermostat (scenarios/pid-thermostat.ron): a room that loses heat to
// the outside, a heater the controller drives between 0 and 100 %, and a
// set-point that follows commands on home/thermostat/setpoint (a number, or
// JSON {"celsius": 23}). Every second it reports its state; once the room
// has stayed within 0.2 °C of a new set-point for two seconds it says so,
// with how far it overshot. A reaction could not do this: it needs memory
// of the past (the integral, the last error, the peak) and arithmetic.

const dt = 0.2; // seconds: the device's `tick`
const kp = 30, ki = 12, kd = 4;
const outside = 10; // °C

let temp = 19.0;
let setpoint = 19.0;
let integral = 0;
let lastError = 0;
let heater = 0;
let peak = temp;
let settling = false;
let steady = 0; // ticks within 0.2 °C
let since = 0; // ticks since the set-point changed
let ticks = 0;

function clamp(x, lo, hi) {
  return Math.min(hi, Math.max(lo, x));
}

function onConnect() {
  device.subscribe("home/thermostat/setpoint", 1);
  device.log("connected at " + temp.toFixed(1) + " °C");
}

function onMessage(topic, payload, props) {
  const json = props.json;
  const v = typeof json === "object" && json !== null ? Number(json.celsius) : Number(payload);
  if (!Number.isFinite(v) || v < 5 || v > 35) {
    device.log("set-point refused: " + payload);
    return;
  }
  setpoint = v;
  integral = 0;
  peak = temp;
  settling = true;
  steady = 0;
  since = 0;
  device.set("setpoint", setpoint);
  device.setState("heating");
}

function onTick() {
  ticks += 1;
  since += 1;
  const error = setpoint - temp;
  // Anti-windup: no integrating further into a saturated heater.
  const saturated = (heater >= 100 && error > 0) || (heater <= 0 && error < 0);
  if (!saturated) integral = clamp(integral + error * dt, -25, 25);
  const derivative = (error - lastError) / dt;
  lastError = error;
  heater = clamp(kp * error + ki * integral + kd * derivative, 0, 100);
  // The room: up to 4 °C/s from the heater, a tenth of the difference to
  // the outside lost per second, and a little sensor noise.
  temp += dt * ((heater / 100) * 4 - 0.1 * (temp - outside)) + (Math.random() - 0.5) * 0.004;
  peak = Math.max(peak, temp);
  device.set("temp", Math.round(temp * 100) / 100);
  device.set("heater", Math.round(heater));

  if (settling) {
    steady = Math.abs(setpoint - temp) < 0.2 ? steady + 1 : 0;
    if (steady >= 10) {
      settling = false;
      const overshoot = Math.max(0, peak - setpoint);
      device.publish("home/thermostat/settled", {
        setpoint,
        overshoot: Math.round(overshoot * 1000) / 1000,
        seconds: Math.round(since * dt * 10) / 10,
      }, { qos: 1 });
      device.log("settled at " + setpoint + " °C, overshoot " + overshoot.toFixed(2) + " °C");
      device.setState("holding");
    }
  }
  if (ticks % 5 === 0) {
    device.publish("home/thermostat/state", {
      temp: Math.round(temp * 100) / 100,
      setpoint,
      heater: Math.round(heater),
    });
  }
}
