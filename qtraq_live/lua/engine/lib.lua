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
-- The wait estimator (docs/eta.md): a gap between two calls longer than the first starts a new
-- session, and so does one longer than the second after a call that left nobody waiting;
-- each hour's level moves its profile entry by this step, and each session its load's entry by this one;
-- the deviation of log cycles before any is seen, and the step each cycle moves it by; how far a
-- session's level strays from its prior before any session is seen (a variance), and the step each
-- session moves that by, and that of a level guessed from the configured service time; the
-- variance a level gains each cycle (a doctor tires, or hurries).
local ETA_SESSION_MS = 3 * 3600 * 1000
local ETA_IDLE_SESSION_MS = 3600 * 1000
local ETA_PROFILE_STEP = 0.3
local ETA_LOAD_STEP = 0.1
local ETA_DEV_STEP = 0.05
local ETA_BETWEEN_PRIOR = 0.12
local ETA_BETWEEN_STEP = 0.1
local ETA_GUESS_VAR = 1.0
local ETA_DRIFT = 0.001

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

-- The hour of the week (0: Monday 00:00-01:00) at a UTC offset in seconds, or nil.
local function hour_of_week(offset)
  if not offset then return nil end
  local h = math.floor((NOW / 1000 + offset) / 3600)
  return ((math.floor(h / 24) + 3) % 7) * 24 + h % 24  -- 1970-01-01 was a Thursday
end

-- ``eta`` packs what is learnt into one queue field (one field to read and write; the views
-- get it as it is): "level deviation cycles level_var between hour_prior load_offset load
-- log_sum last_call waiting hour" (load -1: a session not to learn sessions from; hour -1:
-- not known). A table of it, or nil (nothing learnt yet).
local ETA_PACKED = '^(%S+) (%S+) (%d+) (%S+) (%S+) (%S+) (%S+) (%-?%d+) (%S+) (%d+) ([01]) (%-?%d+)$'
local function eta_unpack(packed)
  if not packed then return nil end
  local m, d, n, v, b, hp, g, lb, s, last, waiting, hour = string.match(packed, ETA_PACKED)
  if not m then return nil end  -- nothing, or an older layout: learnt afresh
  return {m = tonumber(m), d = tonumber(d), n = tonumber(n), v = tonumber(v), b = tonumber(b), hp = tonumber(hp),
          g = tonumber(g), lb = tonumber(lb), s = tonumber(s), last = tonumber(last), waiting = waiting,
          hour = tonumber(hour)}
end

local function eta_pack(q, e)
  q.eta = string.format('%.4f %.4f %d %.5f %.5f %.4f %.4f %d %.4f %s %s %d', e.m, e.d, e.n, e.v, e.b, e.hp, e.g,
                        e.lb, e.s, NOW_S, e.waiting, e.hour)
  redis.call('HSET', K.queue(q.id), 'eta', q.eta)
end

-- A patient was just called in queue ``q`` (its hash, kept in step); ``left``: how many are
-- still waiting; ``offset``: the clinic's UTC offset in seconds now (nil: not known).
-- The time since the queue's previous call, times the counters open, is one "cycle" of a
-- counter: service plus changeover. It is learnt only when somebody was waiting all along (not
-- a doctor waiting for patients) and no pause fell in between (pause_left_s covers pauses).
-- The level (the log cycle) is a Kalman filter's: each cycle moves it by how unsure it is
-- against how much cycles scatter, so a session's first cycles move it as much as sessions
-- really differ here and one 90-minute visit (clipped) moves it a little. A session starts
-- from its prior: what this hour of the week (else of the day) was like, plus what sessions of
-- this load (patients waiting at its first call) were like beside their hour; how far sessions
-- land from their prior is learnt too, and is how unsure a new session's level is. The profile
-- takes an hour's level once, at the first call of another hour or session, and a load's entry
-- moves once a session. Constant work per call, whatever the history.
local function learn_gap(q, offset, left)
  local e = eta_unpack(q.eta)
  local pkey = K.eta_profile(q.id)
  local how = hour_of_week(offset)
  local fresh = not e or NOW - e.last > ETA_SESSION_MS or (e.waiting == '0' and NOW - e.last > ETA_IDLE_SESSION_MS)
  if e and e.n > 0 and e.hour >= 0 and how and (e.hour ~= how or fresh) then
    local wk, hk = 'w' .. e.hour, 'h' .. (e.hour % 24)
    local p = redis.call('HMGET', pkey, wk, hk)
    local x = e.m - e.g  -- the hour's level without this session's load
    local pw, ph = tonumber(p[1]), tonumber(p[2])
    pw = pw and pw + ETA_PROFILE_STEP * (x - pw) or x
    ph = ph and ph + ETA_PROFILE_STEP * (x - ph) or x
    redis.call('HSET', pkey, wk, string.format('%.4f', pw), hk, string.format('%.4f', ph))
  end
  if fresh then
    -- A new session. What the last one showed: how far it landed from its prior, and what its load added.
    -- (One that started from the configured time, load -1, says nothing of either.)
    local b = e and e.b or ETA_BETWEEN_PRIOR
    if e and e.n >= 3 and e.lb >= 0 then
      local mean = e.s / e.n
      local r = 1.5625 * e.d * e.d  -- variance of log cycles: (1.25 x mean absolute deviation)^2
      b = b + ETA_BETWEEN_STEP * ((mean - e.hp - e.g) ^ 2 - r / e.n - b)
      if b < 0.003 then b = 0.003 elseif b > 1 then b = 1 end
      local lk = 'l' .. e.lb
      local g = tonumber(redis.call('HGET', pkey, lk))
      g = g and g + ETA_LOAD_STEP * (mean - e.hp - g) or (mean - e.hp)
      redis.call('HSET', pkey, lk, string.format('%.4f', g))
    end
    -- The load: patients waiting at the session's first call, in half-octaves (at most 20 entries).
    local lb = math.floor(2 * math.log(left + 1) / math.log(2))
    if lb > 19 then lb = 19 end
    local p = redis.call('HMGET', pkey, 'w' .. (how or -1), 'h' .. (how and how % 24 or -1), 'l' .. lb)
    local hp, v = tonumber(p[1]) or tonumber(p[2]) or (e and e.m - e.g), b
    if not hp then  -- nothing learnt yet: the average service time, a guess (the level may be far off)
      local prior = num(q.ema_s)
      if prior < 10 then prior = math.max(num(q.avg_service_s), 10) end
      hp, v, lb = math.log(prior), ETA_GUESS_VAR, -1
    end
    local g = tonumber(p[3]) or 0
    e = {m = hp + g, d = e and e.d or ETA_DEV_PRIOR, n = 0, v = v, b = b, hp = hp, g = g, lb = lb, s = 0}
  elseif e.waiting == '1' and num(q.paused_at) < e.last then
    local x = (NOW - e.last) / 1000 * counters_open(q.id, num(q.ema_s))
    if x < 5 then x = 5 elseif x > 7200 then x = 7200 end
    local lx = math.log(x)
    local band = 2.5 * math.max(e.d, 0.15)
    if lx > e.m + band then lx = e.m + band elseif lx < e.m - band then lx = e.m - band end
    local r = 1.5625 * e.d * e.d
    local gain = e.v / (e.v + r)
    -- the deviation of a cycle from the level, less the part that is the level's own error
    e.d = e.d + ETA_DEV_STEP * (math.abs(lx - e.m) * math.sqrt(r / (r + e.v)) - e.d)
    e.m = e.m + gain * (lx - e.m)
    e.v = (1 - gain) * e.v + ETA_DRIFT
    e.s = e.s + lx
    e.n = e.n + 1
  end
  e.waiting = left > 0 and '1' or '0'
  e.hour = how or -1
  eta_pack(q, e)
end

-- A press that called nobody: the next gap starts from an empty queue, so it is not learnt.
local function learn_empty(q)
  if q.eta and string.find(q.eta, ' 1 %-?%d+$') then
    q.eta = string.gsub(q.eta, ' 1 (%-?%d+)$', ' 0 %1')
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
