-- qtraq-live queue engine: every change to live queue state is one call of a script.
--
-- A script is this file (what every operation shares), the file of one family of operations
-- (define.lua, pause.lua, issue.lua, next.lua, act.lua, read.lua) and run.lua (the dispatch),
-- put together by queue_engine.py: Redis runs a whole script on every call, and a call that
-- defines only its own family's functions costs about half as much before it starts.
--
-- ARGV[1] op, ARGV[2] JSON arguments, ARGV[3] now in ms, ARGV[4] stream MAXLEN; optionally
-- ARGV[5] a stream, ARGV[6] a JSON object of fields, ARGV[7] its MAXLEN: an entry appended in
-- the same step when the change happens (the staff audit record of the press).
-- Returns JSON: {"error": code, "message": text, "field": name} or {"ok": true, ...}.
-- Everything is validated before the first write, so an error leaves no trace.
-- Key names mirror qtraq_live/redis_keys.py. Big numbers (scores) travel as strings:
-- cjson and tostring() keep only 14 significant digits.

local EMA_ALPHA = 0.3
local COUNTER_OPEN_MS = 5 * 60 * 1000
local DEFAULT_PAUSE_S = 600
local NORMAL_OFFSET = 4000000000000000  -- urgent (priority 1) tickets sort before all normal ones

local op = ARGV[1]
local A = cjson.decode(ARGV[2])
local NOW = tonumber(ARGV[3])
local MAXLEN = ARGV[4]

local K = {}
function K.clinic(c) return 'qt:c:' .. c end
function K.version(c) return 'qt:c:' .. c .. ':v' end
function K.events(c) return 'qt:c:' .. c .. ':events' end
function K.clinic_queues(c) return 'qt:c:' .. c .. ':queues' end
function K.recent(c) return 'qt:c:' .. c .. ':recent' end
function K.arrival(c) return 'qt:c:' .. c .. ':arrival' end
function K.queue(q) return 'qt:q:' .. q end
function K.waiting(q) return 'qt:q:' .. q .. ':waiting' end
function K.counters(q) return 'qt:q:' .. q .. ':counters' end
function K.seen(q) return 'qt:q:' .. q .. ':seen' end
function K.labels(q, day) return 'qt:q:' .. q .. ':labels:' .. day end
function K.ticket(id) return 'qt:t:' .. id end
function K.token(t) return 'qt:tok:' .. t end
function K.idem(q, key) return 'qt:idem:' .. q .. ':' .. key end

local failed = false

local function fail(code, message, field)
  failed = true
  return cjson.encode({error = code, message = message, field = field})
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function num(s) return tonumber(s) or 0 end
local function flag(s) return s == '1' end
local function str_or_null(s) if s == nil or s == '' then return cjson.null end return s end

-- Counters serving this queue now: those holding a patient, and those that pressed "next"
-- within two average services (a doctor who left stops counting soon after).
local function counters_open(q, ema_s)
  local busy = {}
  local n = 0
  local held = redis.call('HGETALL', K.counters(q))
  for i = 1, #held, 2 do busy[held[i]] = true; n = n + 1 end
  local window = math.max(2 * ema_s * 1000, COUNTER_OPEN_MS)
  local flat = redis.call('HGETALL', K.seen(q))
  for i = 1, #flat, 2 do
    if not busy[flat[i]] and NOW - num(flat[i + 1]) <= window then n = n + 1 end
  end
  if n < 1 then n = 1 end
  return n
end

-- While paused, the wait grows by what is left of a typical pause (moving average of past ones).
local function pause_left_s(h)
  if not flag(h.paused) then return 0 end
  local typical = num(h.pause_ema_s)
  if typical == 0 then typical = DEFAULT_PAUSE_S end
  local left = typical - (NOW - num(h.paused_at)) / 1000
  if left < 0 then return 0 end
  return math.floor(left + 0.5)
end

local function queue_state(q)
  local h = hgetall(K.queue(q))
  return {
    id = h.id, clinic = h.clinic, name = h.name, prefix = h.prefix,
    paused = flag(h.paused), avg_service_s = num(h.avg_service_s), ema_s = num(h.ema_s),
    pause_left_s = pause_left_s(h),
    counters_open = counters_open(q, num(h.ema_s)), self_checkin = flag(h.self_checkin),
    notify_ahead = num(h.notify_ahead),
  }
end

local function clinic_state(c)
  local h = hgetall(K.clinic(c))
  return {id = h.id, name = h.name, timezone = h.timezone, mask_names = flag(h.mask_names), lang = h.lang}
end

local function ticket_state(t)
  return {
    id = num(t.id), clinic = t.clinic, queue = t.queue, label = t.label, status = t.status,
    prev_status = str_or_null(t.prev_status), priority = num(t.priority), score = t.score,
    name = str_or_null(t.name), notify = flag(t.notify), lang = str_or_null(t.lang),
    counter = str_or_null(t.counter), recalls = num(t.recalls), created_at = num(t.created_at),
    called_at = num(t.called_at), served_at = num(t.served_at), done_at = num(t.done_at),
    day = t.day, appointment_id = str_or_null(t.appointment_id), issue_ahead = num(t.issue_ahead),
  }
end

local function rank_of(t)
  if t.status ~= 'waiting' then return -1 end
  local r = redis.call('ZRANK', K.waiting(t.queue), t.id)
  if r == false then return -1 end
  return r
end

-- Append the event for one change: +1 on the clinic version, one stream entry "{v}-0".
-- Returns the version and the event's JSON.
local function emit(c, etype, queue_id, tickets, queues, extra)
  local v = redis.call('INCR', K.version(c))
  local ev = {v = v, type = etype, clinic = c, queue = queue_id or cjson.null, at = NOW,
              actor = A.actor or cjson.null, tickets = tickets, queues = queues}
  if extra then for k, val in pairs(extra) do ev[k] = val end end
  local json = cjson.encode(ev)
  redis.call('XADD', K.events(c), 'MAXLEN', '~', MAXLEN, v .. '-0', 'e', json)
  return v, json
end

local function load_ticket(id)
  local t = hgetall(K.ticket(id))
  if not t then return nil, fail('not_found', 'unknown ticket ' .. tostring(id), 'ticket') end
  return t
end

local function set_ticket(t, fields)
  local flat = {}
  for k, v in pairs(fields) do
    t[k] = v
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', K.ticket(t.id), unpack(flat))
end

-- The ticket leaves its counter (if it holds one): the counter is free for the next call.
local function leave_counter(t)
  if t.counter and t.counter ~= '' then
    if redis.call('HGET', K.counters(t.queue), t.counter) == t.id then
      redis.call('HDEL', K.counters(t.queue), t.counter)
    end
  end
end

-- Moving average of service time: from call (or start of service) to done, clamped.
local function learn_service_time(t)
  local started = num(t.served_at)
  if started == 0 then started = num(t.called_at) end
  if started == 0 then return end
  local d = (NOW - started) / 1000
  if d < 5 then d = 5 end
  if d > 7200 then d = 7200 end
  local ema = num(redis.call('HGET', K.queue(t.queue), 'ema_s'))
  ema = math.floor((EMA_ALPHA * d + (1 - EMA_ALPHA) * ema) + 0.5)
  redis.call('HSET', K.queue(t.queue), 'ema_s', ema)
end

local function push_recent(c, t)
  redis.call('LPUSH', K.recent(c), cjson.encode({label = t.label, counter = t.counter, queue = t.queue, at = NOW}))
  redis.call('LTRIM', K.recent(c), 0, 19)
end

-- A change to ticket ``t`` answers with its event (the JSON the stream holds, which carries the
-- ticket's and its queue's new state: encoded once) and the ticket's rank among the waiting.
local function result(ev, t)
  return '{"ok":true,"id":' .. t.id .. ',"rank":' .. rank_of(t) .. ',"event":' .. ev .. '}'
end

local ops = {}
