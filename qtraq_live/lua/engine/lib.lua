-- qtraq-live queue engine: every change to live queue state is one call of a script.
--
-- A script is this file (what every operation shares), the file of one family of operations
-- (define.lua, pause.lua, issue.lua, next.lua, act.lua, read.lua) and run.lua (the dispatch),
-- put together by queue_engine.py: Redis runs a whole script on every call, and a call that
-- defines only its own family's functions costs much less before it starts (docs/benchmarks.md).
--
-- ARGV[1] op, ARGV[2] JSON arguments, ARGV[3] now in ms, ARGV[4] stream MAXLEN; optionally
-- ARGV[5] a stream, ARGV[6] its MAXLEN and ARGV[7..] an entry's fields and values: appended in
-- the same step when the call changed something, i.e. emitted an event (the staff audit record
-- of the press: a refused call, an idempotent replay or pausing a paused queue writes none).
-- Returns JSON: {"error": code, "message": text, "field": name} or {"ok": true, ...}.
-- Everything is validated before the first write, so an error leaves no trace.
-- The key table K, the constants the Python shares, the hash readers and the state encoders are
-- generated from qtraq_live/live_schema.py where the two placeholder lines stand (queue_engine's
-- _load_scripts). Big numbers (scores) travel as strings: cjson and tostring() keep only 14
-- significant digits.

local EMA_ALPHA = 0.3
local DEFAULT_PAUSE_S = 600
-- The wait estimator (docs/eta.md): a gap between two calls longer than this starts a new session,
-- each gap moves the level by at least this step, and each hour's level moves its profile entry by this one.
local ETA_SESSION_MS = 3 * 3600 * 1000
local ETA_STEP_MIN = 0.12
local ETA_PROFILE_STEP = 0.3
local ETA_DEV_PRIOR = 0.45

local op = ARGV[1]
local A = cjson.decode(ARGV[2])
local NOW = tonumber(ARGV[3])
local NOW_S = string.format('%d', NOW)  -- as text, for hashes and JSON (tostring would print it again each time)
local MAXLEN = ARGV[4]

__LIVE_PRELUDE__

local emitted = false  -- this call changed something (run.lua appends the audit record then)

local function fail(code, message, field)
  return cjson.encode({error = code, message = message, field = field})
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- A ticket's and a queue's hash as a table (false for a field it lacks), or nil when there is
-- none. The table is made at its full size first: filled from empty it regrows five times.
local function fill(t, flat)
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  if not t.id then return nil end  -- nothing, or a stray field written after the key expired
  return t
end

local function num(s) return tonumber(s) or 0 end
local function flag(s) return s == '1' end

-- JSON is written as text here, not through cjson: the tickets, queues and events a change
-- writes are most of its work, and cjson prints every number through snprintf. A hash field
-- already holds its number's text, and ids, labels, states and days are plain; only what
-- needs escaping (a name someone typed) goes through cjson.
local function jtext(s)
  if not s then return 'null' end
  if string.find(s, '[%c"\\]') then return cjson.encode(s) end
  return '"' .. s .. '"'
end
-- Text this engine wrote itself and never needs escaping: ids, labels, states, days, scores.
local function jplain(s) if not s then return 'null' end return '"' .. s .. '"' end
local function jopt(s) if s == '' then return 'null' end return jtext(s) end
local function jflag(s) if s == '1' then return 'true' end return 'false' end
-- A hash field as a JSON number: every writer stores a number's text ('' or nothing for 0).
local function jnum(s) if not s or s == '' then return '0' end return s end

-- Counters serving this queue now: those holding a patient, and those that pressed "next"
-- within two average services (a doctor who left stops counting soon after). The idle set
-- (counters that pressed "next" and hold nobody, by when they pressed) makes this two counts,
-- whatever the number of counters.
-- Counted once a call per queue: hold() and learn_service_time() drop what they change.
local open_counters = {}
local function counters_open(q, ema_s)
  local n = open_counters[q]
  if n then return n end
  local since = NOW - math.max(2 * ema_s * 1000, COUNTER_OPEN_MS)
  n = redis.call('HLEN', K.counters(q)) + redis.call('ZCOUNT', K.idle(q), since, '+inf')
  if n < 1 then n = 1 end
  open_counters[q] = n
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

__LIVE_ENCODERS__

local function version_json(c) return jnum(redis.call('GET', K.version(c))) end

local function rank_of(t)
  if t.status ~= 'waiting' then return -1 end
  local r = redis.call('ZRANK', K.waiting(t.queue), t.id)
  if r == false then return -1 end
  return r
end

-- Append the event for one change: +1 on the clinic version, one stream entry "{v}-0".
-- ``tickets`` and ``queues`` are lists of their JSON, ``more`` adds fields.
-- Returns the version and the event's JSON.
local function emit(c, etype, queue_id, tickets, queues, more)
  local v = redis.call('INCR', K.version(c))
  local json = '{"v":' .. v .. ',"type":"' .. etype .. '","clinic":' .. jplain(c) .. ',"queue":' .. jplain(queue_id) ..
    ',"at":' .. NOW_S .. ',"actor":' .. jtext(A.actor) .. ',"tickets":[' .. table.concat(tickets, ',') ..
    '],"queues":[' .. table.concat(queues, ',') .. ']' .. (more or '') .. '}'
  redis.call('XADD', K.events(c), 'MAXLEN', '~', MAXLEN, v .. '-0', 'e', json)
  emitted = true
  return v, json
end

local function load_ticket(id)
  local t = ticket_hash(id)
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

-- A counter now holds ticket ``id`` (busy), or nobody (idle since its last press, ``pressed``).
local function hold(q, counter, id, pressed)
  open_counters[q] = nil
  if id then
    redis.call('HSET', K.counters(q), counter, id)
    redis.call('ZREM', K.idle(q), counter)
  else
    redis.call('HDEL', K.counters(q), counter)
    redis.call('ZADD', K.idle(q), pressed, counter)
  end
end

-- The ticket leaves its counter (if it holds one): the counter is free for the next call.
local function leave_counter(t)
  if t.counter and t.counter ~= '' and redis.call('HGET', K.counters(t.queue), t.counter) == t.id then
    hold(t.queue, t.counter, nil, redis.call('HGET', K.seen(t.queue), t.counter) or '0')
  end
end

-- Moving average of service time: from call (or start of service) to done, clamped; ``q`` is
-- the ticket's queue hash, kept in step with what is written.
local function learn_service_time(t, q)
  local started = num(t.served_at)
  if started == 0 then started = num(t.called_at) end
  if started == 0 then return end
  local d = (NOW - started) / 1000
  if d < 5 then d = 5 end
  if d > 7200 then d = 7200 end
  local ema = math.floor((EMA_ALPHA * d + (1 - EMA_ALPHA) * num(q.ema_s)) + 0.5)
  q.ema_s = tostring(ema)
  open_counters[t.queue] = nil
  redis.call('HSET', K.queue(t.queue), 'ema_s', q.ema_s)
end

-- A patient was just called in queue ``q`` (its hash, kept in step); ``left``: somebody is still
-- waiting. The time since the queue's previous call, times the counters open, is one "cycle" of
-- a counter: service plus changeover. It is learnt only when somebody was waiting all along (not
-- a doctor waiting for patients) and no pause fell in between (pause_left_s covers pauses). The
-- level is a clipped moving average of log cycles (one 90-minute visit moves it a
-- little), fast while a session is young, with the mean absolute deviation of log cycles (the
-- spread of the range). A session starts from what this hour of the week (else of the day)
-- was like: the profile takes an hour's level once, at the first call of another hour. ``how`` is
-- the hour of the week in the clinic's timezone. Constant work per call, whatever the history.
local function learn_gap(q, how, left)
  -- ``eta`` packs what is learnt into one field: "level deviation cycles last_call waiting hour"
  -- (one field to read and write, and the views get it as it is).
  local m, d, n, last, waiting, hour
  if q.eta then
    m, d, n, last, waiting, hour = string.match(q.eta, '^(%S+) (%S+) (%d+) (%d+) ([01]) (%d*)$')
  end
  m, d, n, last = tonumber(m), tonumber(d) or ETA_DEV_PRIOR, tonumber(n) or 0, tonumber(last) or 0
  if m == 0 then m = nil end
  hour = tonumber(hour)
  local pkey = K.eta_profile(q.id)
  if how and m and n > 0 and hour and hour ~= how then
    local wk, hk = 'w' .. hour, 'h' .. (hour % 24)
    local p = redis.call('HMGET', pkey, wk, hk)
    local pw, ph = tonumber(p[1]), tonumber(p[2])
    pw = pw and pw + ETA_PROFILE_STEP * (m - pw) or m
    ph = ph and ph + ETA_PROFILE_STEP * (m - ph) or m
    redis.call('HSET', pkey, wk, string.format('%.4f', pw), hk, string.format('%.4f', ph))
  end
  if last == 0 or NOW - last > ETA_SESSION_MS then
    if how then
      local p = redis.call('HMGET', pkey, 'w' .. how, 'h' .. (how % 24))
      m = tonumber(p[1]) or tonumber(p[2]) or m
    end
    n = 0
  elseif waiting == '1' and num(q.paused_at) < last then
    local x = (NOW - last) / 1000 * counters_open(q.id, num(q.ema_s))
    if x < 5 then x = 5 elseif x > 7200 then x = 7200 end
    local lx = math.log(x)
    if not m then  -- nothing learnt yet: start from the average service time
      local prior = num(q.ema_s)
      if prior < 10 then prior = math.max(num(q.avg_service_s), 10) end
      m = math.log(prior)
    end
    local band = 2.5 * math.max(d, 0.15)
    if lx > m + band then lx = m + band elseif lx < m - band then lx = m - band end
    local step = 1 / (n + 2)
    if step < ETA_STEP_MIN then step = ETA_STEP_MIN end
    d = d + step * (math.abs(lx - m) - d)
    m = m + step * (lx - m)
    n = n + 1
  end
  if not m then m = 0 end  -- 0: nothing learnt (a log of seconds is never 0 here)
  q.eta = string.format('%.4f %.4f %d %s %s %s', m, d, n, NOW_S, left and '1' or '0', how or '')
  redis.call('HSET', K.queue(q.id), 'eta', q.eta)
end

-- A press that called nobody: the next gap starts from an empty queue, so it is not learnt.
local function learn_empty(q)
  if q.eta and string.find(q.eta, ' 1 %d*$') then
    q.eta = string.gsub(q.eta, ' 1 (%d*)$', ' 0 %1')
    redis.call('HSET', K.queue(q.id), 'eta', q.eta)
  end
end

local function push_recent(c, t)
  redis.call('LPUSH', K.recent(c), '{"label":' .. jplain(t.label) .. ',"counter":' .. jtext(t.counter) ..
             ',"queue":' .. jplain(t.queue) .. ',"at":' .. NOW_S .. '}')
  redis.call('LTRIM', K.recent(c), 0, RECENT_CALLS - 1)
end

-- A change to ticket ``t`` answers with its event (the JSON the stream holds, which carries the
-- ticket's and its queue's new state: encoded once) and the ticket's rank among the waiting.
local function result(ev, t)
  return '{"ok":true,"id":' .. t.id .. ',"rank":' .. rank_of(t) .. ',"event":' .. ev .. '}'
end

local ops = {}
